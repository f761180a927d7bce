// The part of google-protobuf's runtime we use (it ships no TypeScript types): the binary
// writer and reader for the few messages rpc/status.ts builds by hand.
declare module 'google-protobuf' {
  export class BinaryWriter {
    writeInt32(field: number, value: number): void;
    writeBool(field: number, value: boolean): void;
    writeString(field: number, value: string): void;
    writeBytes(field: number, value: Uint8Array): void;
    getResultBuffer(): Uint8Array;
  }
  export class BinaryReader {
    constructor(bytes: Uint8Array);
    nextField(): boolean;
    isEndGroup(): boolean;
    getFieldNumber(): number;
    readInt32(): number;
    readBool(): boolean;
    readString(): string;
    readBytes(): Uint8Array;
    skipField(): void;
  }
  const jspb: { BinaryWriter: typeof BinaryWriter; BinaryReader: typeof BinaryReader };
  export default jspb;
}
