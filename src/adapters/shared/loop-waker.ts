/**
 * The sleep of a subscription's loop and the call that cuts it short (a notification, resume, a lost
 * lease, close). `woken` remembers a wake that came while the loop was busy rather than asleep, so the
 * loop goes round again at once instead of sleeping through it; the loop clears it at the top of a pass.
 */
export class LoopWaker {
  woken = false;
  #wakeUp: (() => void) | undefined;

  wake(): void {
    this.woken = true;
    const wakeUp = this.#wakeUp;
    this.#wakeUp = undefined;
    wakeUp?.();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
