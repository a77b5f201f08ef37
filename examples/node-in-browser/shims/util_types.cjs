// Node's `util/types` (Node 10+), which node-stdlib-browser leaves out: the npm `util` polyfill
// carries the same functions as `util.types`. `pg` needs `isDate` from it.
module.exports = require("util").types;
