// Entry of the single-file plugin's bundle (scripts/package.mjs): unpack the assets, then run
// the plugin as dist/src/main.js does. ES module order: bootstrap.mjs is evaluated first.
import './bootstrap.mjs';
import '../../dist/src/main.js';
