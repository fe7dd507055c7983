// The part of http-parser-js (a pure-JS port of Node's HTTP parser, no types of its own) that
// src/http/http-get.ts uses.
declare module "http-parser-js" {
  export interface ParsedHead {
    versionMajor: number;
    versionMinor: number;
    /** Flat: name, value, name, value, ... as received. */
    headers: string[];
    statusCode: number;
    statusMessage: string;
    upgrade: boolean;
    shouldKeepAlive: boolean;
  }

  export class HTTPParser {
    static readonly RESPONSE: "RESPONSE";
    static readonly REQUEST: "REQUEST";
    static readonly kOnHeaders: 1;
    static readonly kOnHeadersComplete: 2;
    static readonly kOnBody: 3;
    static readonly kOnMessageComplete: 4;
    static maxHeaderSize: number;
    constructor(type: "RESPONSE" | "REQUEST");
    /** Returns the number of bytes consumed, or the parse error. */
    execute(chunk: Buffer, start?: number, length?: number): number | Error;
    /** At end of input: completes a close-delimited body; an Error when the input stopped mid-message. */
    finish(): undefined | Error;
    /** Return true (or 1) to say the message has no body (1xx, 204, 304, HEAD). */
    [HTTPParser.kOnHeadersComplete]: (head: ParsedHead) => boolean | number | undefined;
    /** A view into the chunk given to execute(), not a copy. */
    [HTTPParser.kOnBody]: (chunk: Buffer, start: number, length: number) => void;
    [HTTPParser.kOnMessageComplete]: () => void;
  }
}
