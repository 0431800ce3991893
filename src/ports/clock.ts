// The Clock is pure (core's ids and snowflakes need it, and core imports only core); features and adapters
// may keep importing it from here.
export { type Clock, systemClock } from '../core/clock.ts';
