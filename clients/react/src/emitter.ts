// A tiny listener set.

/** Listeners called with no arguments (React's useSyncExternalStore shape). */
export class Emitter {
  private listeners = new Set<() => void>()

  /** Adds `fn`; returns its removal. */
  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn)
    return () => {
      this.listeners.delete(fn)
    }
  }

  /** Calls every listener. */
  emit(): void {
    for (const fn of [...this.listeners]) fn()
  }
}
