/*
 * nix-exec: the last step of `nomad alloc exec` (and script checks, template change scripts)
 * into a bubblewrap task. It runs INSIDE the task: nsenter has already entered the task's
 * namespaces, chrooted to its root and become the task user. It is statically linked (the
 * task's root holds only its closure, no libc of ours) and reaches the task without being a
 * file in it: the host side opens it as fd 3 and nsenter execs /proc/self/fd/3.
 *
 *   nix-exec <spec fd>
 *
 * reads its spec from <spec fd> (a file the root side opened and already removed), every
 * field NUL-terminated:
 *
 *   <cwd> <n> NAME=VALUE x n <program> <arg>...
 *
 * The spec is not in any command line: a host process's argv is readable by every host user,
 * and the task's variables (tokens, passwords) must not be.
 * 1. closes every descriptor above 2 (fd 3 is this file, a host file: the command must not
 *    keep it; the spec fd; others are whatever the host chain held);
 * 2. changes to <cwd> inside the task's root, so a symlink in it resolves in the task;
 * 3. makes the n variables the complete environment (the host chain's is dropped: the task's
 *    variables never reach a host process, and the host's never reach the task);
 * 4. execs <program> (with a slash: as it is; without: the first executable file of the
 *    task's PATH), exiting 127 when it is not found and 126 when it cannot be run, like a
 *    shell, with a message on stderr in the driver's error grammar.
 * Its own failures (bad arguments, cwd) exit 125.
 *
 * Build: cc -static -O2 -o nix-exec nix-exec.c (scripts/make-plugin-dir.mjs does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXIT_SETUP 125
#define EXIT_NOT_EXECUTABLE 126
#define EXIT_NOT_FOUND 127
#define MAX_SPEC ((size_t)64 << 20)

static void fail(int code, const char *cause, const char *fix) {
  fprintf(stderr, "failed to exec in task: %s; fix: %s\n", cause, fix);
  exit(code);
}

static void close_above_stderr(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 1 << 20) max = 1 << 20;
  for (long fd = 3; fd < max; fd++) close((int)fd);
}

static int is_executable_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The spec's fields, NUL-terminated strings read from `fd` to its end, numbered from 1 like
   argv (fields[0] is a placeholder, fields[count + 1] is NULL). */
static char **read_spec(int fd, int *count) {
  size_t size = 0, capacity = 64 * 1024;
  char *data = malloc(capacity);
  if (data == NULL) fail(EXIT_SETUP, "out of memory", "retry");
  for (;;) {
    if (size == capacity) {
      if (capacity >= MAX_SPEC) fail(EXIT_SETUP, "the spec is larger than 64 MiB", "pass a smaller environment");
      capacity *= 2;
      data = realloc(data, capacity);
      if (data == NULL) fail(EXIT_SETUP, "out of memory", "retry");
    }
    ssize_t got = read(fd, data + size, capacity - size);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(EXIT_SETUP, "cannot read the spec", "run it as the driver does");
    if (got == 0) break;
    size += (size_t)got;
  }
  if (size == 0 || data[size - 1] != '\0') fail(EXIT_SETUP, "the spec is not NUL-terminated fields", "run it as the driver does");
  int n = 0;
  for (size_t i = 0; i < size; i++) n += data[i] == '\0';
  char **fields = calloc((size_t)n + 2, sizeof *fields);
  if (fields == NULL) fail(EXIT_SETUP, "out of memory", "retry");
  fields[0] = "nix-exec";
  char *p = data;
  for (int i = 1; i <= n; i++) {
    fields[i] = p;
    p += strlen(p) + 1;
  }
  *count = n;
  return fields;
}

int main(int argc, char **argv) {
  char message[PATH_MAX + 256];
  if (argc != 2) fail(EXIT_SETUP, "nix-exec needs <spec fd>", "run it as the driver does");
  char *end = NULL;
  errno = 0;
  long spec_fd = strtol(argv[1], &end, 10);
  if (errno != 0 || end == argv[1] || *end != '\0' || spec_fd < 3 || spec_fd > INT_MAX) fail(EXIT_SETUP, "the spec fd is not a descriptor number of 3 or more", "run it as the driver does");
  int count = 0;
  char **fields = read_spec((int)spec_fd, &count);
  close_above_stderr();
  if (count < 3) fail(EXIT_SETUP, "the spec needs <cwd> <n> [NAME=VALUE...] <program> [arg...]", "run it as the driver does");
  argv = fields;
  const char *cwd = argv[1];
  end = NULL;
  errno = 0;
  long n = strtol(argv[2], &end, 10);
  if (errno != 0 || end == argv[2] || *end != '\0' || n < 0 || n > count - 3) {
    fail(EXIT_SETUP, "the variable count is not a number of the fields given", "run it as the driver does");
  }
  char **env = calloc((size_t)n + 1, sizeof *env);
  if (env == NULL) fail(EXIT_SETUP, "out of memory", "retry");
  for (long i = 0; i < n; i++) {
    if (strchr(argv[3 + i], '=') == NULL) fail(EXIT_SETUP, "a variable is not NAME=VALUE", "run it as the driver does");
    env[i] = argv[3 + i];
  }
  char **command = &argv[3 + n];
  char *program = command[0];

  if (chdir(cwd) != 0) {
    snprintf(message, sizeof message, "cannot change to the task's working directory \"%s\": %s", cwd, strerror(errno));
    fail(EXIT_SETUP, message, "set work_dir to a directory that exists in the task");
  }

  if (strchr(program, '/') != NULL) {
    execve(program, command, env);
    int error = errno;
    snprintf(message, sizeof message, "cannot run \"%s\": %s", program, strerror(error));
    fail(error == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE, message, "name an executable program of the task");
  }
  const char *path = "";
  for (long i = 0; i < n; i++) {
    if (strncmp(env[i], "PATH=", 5) == 0) path = env[i] + 5;
  }
  char candidate[PATH_MAX];
  int denied = 0;
  const char *dir = path;
  for (;;) {
    const char *colon = strchr(dir, ':');
    size_t length = colon == NULL ? strlen(dir) : (size_t)(colon - dir);
    if (length > 0 && dir[0] == '/' && length + strlen(program) + 2 <= sizeof candidate) {
      memcpy(candidate, dir, length);
      candidate[length] = '/';
      strcpy(candidate + length + 1, program);
      if (is_executable_file(candidate)) {
        execve(candidate, command, env);
        denied = errno;
      } else if (access(candidate, F_OK) == 0 && denied == 0) {
        denied = EACCES;
      }
    }
    if (colon == NULL) break;
    dir = colon + 1;
  }
  if (denied != 0) {
    snprintf(message, sizeof message, "cannot run \"%s\": %s", program, strerror(denied));
    fail(EXIT_NOT_EXECUTABLE, message, "name an executable program of the task");
  }
  snprintf(message, sizeof message, "command \"%s\" is not in the task's PATH (%s)", program, path[0] == '\0' ? "empty" : path);
  fail(EXIT_NOT_FOUND, message, "run a program of the task's closure or give its absolute path");
  return EXIT_NOT_FOUND;
}
