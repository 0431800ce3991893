/**
 * TEST-ONLY deliberately broken builds, for the fault suite (`npm run faults -- <scenario> --broken <name>`)
 * to prove that its checker fails when a component breaks its contract. Never set in production.
 *
 *   ZEROLOSS_TEST_BREAK=relay-ack-before-send   relays record each claimed row as sent *before* handing it to
 *                                               the broker and ignore the broker's answer: the "commit progress
 *                                               before the effect" bug. A send that fails, or a relay killed
 *                                               mid-send, then loses committed messages.
 *
 * Off by default. Read once, when this module is first imported; components choose their code path once at
 * construction, so when it is off nothing is checked per message.
 */
export type TestBreak = 'relay-ack-before-send';

const value = process.env.ZEROLOSS_TEST_BREAK;

export const TEST_BREAK: TestBreak | undefined = value === 'relay-ack-before-send' ? value : undefined;

if (value && TEST_BREAK === undefined) {
  process.emitWarning(`ZEROLOSS_TEST_BREAK=${value} is not a known test break; ignored`);
}
