/** A tiny event emitter: `on(type, fn)` returns a function that unsubscribes; "*" hears everything. */
export class Emitter {
  #handlers = new Map();

  on(type, handler) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(handler);
    return () => this.#handlers.get(type)?.delete(handler);
  }

  emit(type, data = {}) {
    const handlers = [...(this.#handlers.get(type) ?? []), ...(this.#handlers.get("*") ?? [])];
    for (const handler of handlers) {
      try {
        handler(data, type);
      } catch (error) {
        console.error(`a handler of "${type}" failed`, error);
      }
    }
  }
}
