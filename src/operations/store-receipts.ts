import type { Receipts } from '../core/control-message.ts';
import type { ReceiptStore } from '../ports/receipt-store.ts';
import type { Subscriber } from '../ports/transport.ts';
import { type ControlListener, type ControlListenerOptions, listenControl } from './control-channel.ts';

/**
 * The producer's `receipts` handler for the control channel: stores what a consumer group reports it applied
 * (two-way confirmation). Receipts of messages neither in this outbox nor of its state-column sources are
 * dropped by the store, so every producer can read the whole channel. The listener commits the record's offset only after this resolves: a crash
 * before the insert committed re-reads the record, and a repeated receipt is kept once.
 */
export function storeReceipts(
  store: Pick<ReceiptStore, 'recordReceipts'>,
  onStored?: (stored: number, message: Receipts) => void,
): (message: Receipts) => Promise<void> {
  return async (message) => {
    const appliedAt = new Date(message.at);
    const stored = await store.recordReceipts(message.applied.map((a) => ({ messageId: a.messageId, group: message.group, appliedAt })));
    onStored?.(stored, message);
  };
}

/** A control listener that only stores receipts: for a producer that runs no `zeroloss serve`. */
export function listenReceipts(
  options: Omit<ControlListenerOptions, 'handlers'> & {
    subscriber: Subscriber;
    store: Pick<ReceiptStore, 'recordReceipts'>;
    onStored?: (stored: number, message: Receipts) => void;
  },
): Promise<ControlListener> {
  const { store, onStored, ...rest } = options;
  return listenControl({ ...rest, handlers: { receipts: storeReceipts(store, onStored) } });
}
