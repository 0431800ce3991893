/**
 * Parts of a backend bundle that connect on first use: a bundle made for the relay never opens a consumer
 * connection, and `close` closes only what was opened.
 */
export class LazyParts {
  readonly #closers: Array<() => Promise<void>> = [];
  #closed = false;

  part<T>(make: () => T, close: (value: T) => Promise<void>): () => T {
    let value: T | undefined;
    let made = false;
    return () => {
      if (!made) {
        value = make();
        made = true;
        this.#closers.push(() => close(value as T));
      }
      return value as T;
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const results = await Promise.allSettled(this.#closers.map((close) => close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
