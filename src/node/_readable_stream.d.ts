// Types of npm `readable-stream` 4 (Node's `stream` module as a package): its API is Node's, so
// it is typed with Deno's built-in `node:stream` declarations. (`@types/readable-stream` pulls in
// a second `@types/node` whose globals clash with Deno's.)
import type { Duplex as NodeDuplex } from "node:stream";

/** Node 22 `stream.Duplex`, as npm `readable-stream` 4 implements it. */
export declare const Duplex: typeof NodeDuplex;
/** Instances of {@linkcode Duplex}. */
export type Duplex = NodeDuplex;
