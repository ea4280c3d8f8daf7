// A sorted list of index entries kept in chunks, so that an insert or a removal costs
// O(log n + chunk) and a walk from any position is cheap.
import { comparePrefix, type Entry } from "./queryValues";

const CHUNK = 512;

type Position = { chunk: number; index: number };

export class SortedEntries {
  private chunks: Entry[][] = [];
  private size_ = 0;

  get size(): number {
    return this.size_;
  }

  private static compare(a: Entry, b: Entry): number {
    return comparePrefix(a.key, b.key, Math.max(a.key.length, b.key.length));
  }

  /** First position whose entry does not satisfy `before` (monotone: true...true false...false). */
  firstNot(before: (entry: Entry) => boolean): Position {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const chunk = chunks[mid];
      if (before(chunk[chunk.length - 1])) lo = mid + 1;
      else hi = mid;
    }
    if (lo === chunks.length) return { chunk: lo, index: 0 };
    const chunk = chunks[lo];
    let a = 0;
    let b = chunk.length;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (before(chunk[mid])) a = mid + 1;
      else b = mid;
    }
    return { chunk: lo, index: a };
  }

  private locate(entry: Entry): Position {
    return this.firstNot((e) => SortedEntries.compare(e, entry) < 0);
  }

  insert(entry: Entry): void {
    this.size_ += 1;
    if (this.chunks.length === 0) {
      this.chunks.push([entry]);
      return;
    }
    let { chunk, index } = this.locate(entry);
    if (chunk === this.chunks.length) {
      chunk -= 1;
      index = this.chunks[chunk].length;
    }
    const target = this.chunks[chunk];
    target.splice(index, 0, entry);
    if (target.length > 2 * CHUNK) this.chunks.splice(chunk + 1, 0, target.splice(CHUNK));
  }

  remove(entry: Entry): boolean {
    const { chunk, index } = this.locate(entry);
    const target = this.chunks[chunk];
    if (target === undefined || index >= target.length || SortedEntries.compare(target[index], entry) !== 0) {
      return false;
    }
    target.splice(index, 1);
    if (target.length === 0) this.chunks.splice(chunk, 1);
    this.size_ -= 1;
    return true;
  }

  /** Entries from `from` onwards (asc), or before `from` backwards (desc). */
  *walk(from: Position, order: "asc" | "desc"): Generator<Entry> {
    const chunks = this.chunks;
    if (order === "asc") {
      for (let c = from.chunk, i = from.index; c < chunks.length; c++, i = 0) {
        const chunk = chunks[c];
        for (; i < chunk.length; i++) yield chunk[i];
      }
    } else {
      let c = from.chunk;
      let i = from.index - 1;
      if (i < 0) {
        c -= 1;
        i = c >= 0 ? chunks[c].length - 1 : -1;
      }
      for (; c >= 0; c--, i = c >= 0 ? chunks[c].length - 1 : -1) {
        const chunk = chunks[c];
        for (; i >= 0; i--) yield chunk[i];
      }
    }
  }
}
