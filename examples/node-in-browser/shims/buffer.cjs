// Node's `buffer` module: the npm `buffer` polyfill (v6, the one wasmnet's dist/node carries too)
// plus `buffer.constants` (Node 8.2+), which the polyfill lacks and ioredis's pipeline reads.
// "buffer/" (trailing slash) is the npm package itself, not this alias.
const buffer = require("buffer/");

module.exports = {
  ...buffer,
  constants: {
    MAX_LENGTH: buffer.kMaxLength,
    // V8's string length limit on 64-bit platforms, as Node reports it.
    MAX_STRING_LENGTH: 2 ** 29 - 24,
  },
};
