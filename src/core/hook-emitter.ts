import { EventEmitter } from 'node:events';
import { errorSummary, ZerolossError } from './errors.ts';

/**
 * The EventEmitter of zeroloss's long-running parts (consumer, relays). Their events are the application's
 * hooks (metrics, alerts, audit), emitted from inside their loops. A listener that throws is reported as
 * an 'error' (`ZL_LISTENER_FAILED`) and never thrown into the stage that emitted the event: EventEmitter
 * throws a listener's error out of emit(), where it failed a record whose dead letter was already written,
 * cut a revoke short before its commit, or failed a relay batch's record after it had committed, so the
 * batch was recorded again, and failed again, for good. The event's other listeners still run; an 'error'
 * listener that throws, or an 'error' nobody listens to, is dropped (the parts log their errors).
 */
export class HookEmitter<T extends Record<keyof T, unknown[]>> extends EventEmitter<T> {}

// Set on the prototype rather than overridden in the class: the typed emit() of EventEmitter<T> stays as it
// is for callers (an override cannot restate its generic signature), only what it does changes.
HookEmitter.prototype.emit = function emit(this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
  // rawListeners: a once() listener's wrapper removes it, as emit() does.
  const listeners = this.rawListeners(event) as Array<(...a: unknown[]) => unknown>;
  if (listeners.length === 0) return false;
  for (const listener of listeners) {
    try {
      listener.apply(this, args);
    } catch (error) {
      if (event === 'error') continue;
      const failure = new ZerolossError('ZL_LISTENER_FAILED', `a listener of the '${String(event)}' event threw: ${errorSummary(error)}`, {
        retryable: false,
        cause: error,
        details: { event: String(event) },
      });
      this.emit('error', failure);
    }
  }
  return true;
} as never;
