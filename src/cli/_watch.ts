/**
 * File watching for `--watch-policy`, on `node:fs` `watch` (Deno and Bun both implement it).
 * Editors replace a file rather than write it in place (a rename over the old inode), which ends
 * a watch on the file itself: the directory is watched instead, filtered by the file's name.
 *
 * @module
 */
import { watch } from "node:fs";
import { basename, dirname } from "node:path";

/**
 * Calls `changed` when `path` changes, once per burst of events within `debounceMs` (default
 * 200 ms); returns a function that stops watching.
 *
 * @throws {Error} when the file's directory cannot be watched (missing, permission).
 */
export function watchFile(path: string, changed: () => void, debounceMs = 200): () => void {
  const name = basename(path);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watcher = watch(dirname(path), (_event, file) => {
    if (file !== null && String(file) !== name) return;
    clearTimeout(timer);
    timer = setTimeout(changed, debounceMs);
  });
  watcher.on("error", () => {}); // a directory that goes away: nothing more to watch
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
