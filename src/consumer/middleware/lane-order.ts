import type { Stage } from '../chain.ts';
import { AbandonedError, type RoutedDelivery } from '../delivery.ts';
import { type LaneTicket, OutOfTurnError } from '../lane-ticket.ts';

/**
 * The first stage of each attempt: keeps a key's messages in order while several of them are in progress
 * (see lane-ticket.ts). An attempt starts only once the key's previous message is applied or is itself
 * starting an attempt that has not failed (this one can then follow it into its transaction). Behind a
 * retry delay, a submitted or a running transaction, a message waits here for the previous one to change,
 * unmarked by the poison guard and holding no slot: a crash meanwhile leaves it no suspect. An attempt that
 * turns out to be out of turn (OutOfTurnError) is not an attempt: the retry stage starts it again at once,
 * and it waits here for its turn.
 */
export function laneOrderStage(): Stage<RoutedDelivery> {
  return async (d, next) => {
    const ticket = d.lane.ticket;
    while (!ticket.mayStart) {
      if (!(await d.lane.wait(turnCome(ticket), d.signal))) throw new AbandonedError();
    }
    ticket.set('active');
    try {
      await next(d);
    } catch (error) {
      // From a failed message on, the key goes one message at a time: the next waits for this one to settle.
      if (error instanceof OutOfTurnError) ticket.set('waiting');
      else ticket.fail();
      throw error;
    }
  };
}

/**
 * Resolves at the first moment the ticket may start, following its predecessors' changes synchronously.
 * Waiting on each change instead woke the record, and took a slot, at every step of the message ahead
 * (active, ready, submitted, running) only to find it still could not start: with a key's 16 messages in
 * progress, most slot grants went to such checks. Checked again once the slot is back (it may have
 * passed meanwhile).
 */
function turnCome(ticket: LaneTicket): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      const previous = ticket.previous;
      if (ticket.mayStart || !previous) resolve();
      else previous.onChange(check);
    };
    check();
  });
}
