import { createServer, type Server, type Socket, connect } from 'node:net';

/**
 * A TCP proxy on loopback that a fault schedule can break: the fault suite's network nemesis. Clients
 * (relays, consumers) connect to `listenPort`; each connection is forwarded to `targetPort`.
 *
 *   cut()          resets every open connection (RST on both sides), as a dropped link or a firewall flush
 *   refuse(true)   new connections are reset as soon as they are accepted, as a closed port
 *   stall(true)    nothing moves in either direction and new connections hang: a partition. Bytes are
 *                  held, not lost (TCP would retransmit them), and flow again on stall(false)
 *   delay(ms)      every chunk is forwarded `ms` later, order kept: a slow link
 *   heal()         all of the above off
 */
export class TcpProxy {
  readonly name: string;
  readonly listenPort: number;
  readonly targetPort: number;
  readonly #host: string;
  readonly #pairs = new Set<Pair>();
  #server: Server | undefined;
  #refusing = false;
  #stalled = false;
  #delayMs = 0;
  /** Connections accepted, and connections reset by cut() or refuse(). */
  readonly stats = { accepted: 0, reset: 0 };

  constructor(options: { name: string; listenPort: number; targetPort: number; host?: string }) {
    this.name = options.name;
    this.listenPort = options.listenPort;
    this.targetPort = options.targetPort;
    this.#host = options.host ?? '127.0.0.1';
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer({ noDelay: true }, (client) => this.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.#host, port: this.listenPort, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => {});
    this.#server = server;
  }

  get open(): number {
    return this.#pairs.size;
  }

  cut(): number {
    const n = this.#pairs.size;
    for (const pair of [...this.#pairs]) this.#reset(pair);
    return n;
  }

  refuse(on: boolean): void {
    this.#refusing = on;
  }

  stall(on: boolean): void {
    this.#stalled = on;
    if (!on) for (const pair of this.#pairs) this.#flow(pair);
  }

  delay(ms: number): void {
    this.#delayMs = Math.max(0, ms);
  }

  heal(): void {
    this.#refusing = false;
    this.#delayMs = 0;
    this.stall(false);
  }

  async close(): Promise<void> {
    this.cut();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.stats.accepted++;
    client.on('error', () => {});
    if (this.#refusing) {
      this.stats.reset++;
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined, queues: { up: [], down: [] }, timers: new Set(), connected: false };
    this.#pairs.add(pair);
    client.pause();
    client.once('close', () => this.#drop(pair));
    if (this.#stalled) {
      pair.pendingConnect = true;
      return;
    }
    this.#connect(pair);
  }

  #connect(pair: Pair): void {
    pair.pendingConnect = false;
    const upstream = connect({ host: this.#host, port: this.targetPort, noDelay: true });
    pair.upstream = upstream;
    upstream.pause();
    upstream.on('error', () => {});
    upstream.once('close', () => {
      // The target refused us or died: the client sees its connection reset, as it would without us.
      // A target that closed normally gets its last bytes (an error message, say) delivered first.
      if (!pair.connected) this.#reset(pair);
      else {
        pair.upstreamClosed = true;
        this.#drain(pair, 'down');
      }
    });
    upstream.once('connect', () => {
      pair.connected = true;
      pair.client.on('data', (chunk: Buffer) => this.#forward(pair, 'up', chunk));
      upstream.on('data', (chunk: Buffer) => this.#forward(pair, 'down', chunk));
      this.#flow(pair);
    });
  }

  /** Resumes reading from both sides unless stalled; a connection accepted while stalled connects now. */
  #flow(pair: Pair): void {
    if (this.#stalled || !this.#pairs.has(pair)) return;
    if (pair.pendingConnect) {
      this.#connect(pair);
      return;
    }
    if (!pair.connected) return;
    pair.client.resume();
    pair.upstream?.resume();
  }

  #forward(pair: Pair, direction: 'up' | 'down', chunk: Buffer): void {
    if (this.#stalled) {
      // Stop reading; what is already read waits in the queue and goes out, in order, when the stall ends.
      pair.client.pause();
      pair.upstream?.pause();
    }
    const to = direction === 'up' ? pair.upstream : pair.client;
    if (!to || to.destroyed) return;
    const queue = pair.queues[direction];
    queue.push({ chunk, due: Date.now() + this.#delayMs });
    if (queue.length === 1) this.#drain(pair, direction);
  }

  #drain(pair: Pair, direction: 'up' | 'down'): void {
    const to = direction === 'up' ? pair.upstream : pair.client;
    const queue = pair.queues[direction];
    while (queue.length > 0 && to && this.#pairs.has(pair)) {
      if (this.#stalled) {
        this.#later(pair, direction, 20);
        return;
      }
      const head = queue[0] as { chunk: Buffer; due: number };
      const wait = head.due - Date.now();
      if (wait > 0) {
        this.#later(pair, direction, wait);
        return;
      }
      queue.shift();
      if (!to.destroyed) to.write(head.chunk);
    }
    if (direction === 'down' && pair.upstreamClosed && queue.length === 0 && this.#pairs.has(pair)) {
      this.#pairs.delete(pair);
      pair.client.end();
    }
  }

  #later(pair: Pair, direction: 'up' | 'down', ms: number): void {
    const timer = setTimeout(() => {
      pair.timers.delete(timer);
      this.#drain(pair, direction);
    }, ms);
    pair.timers.add(timer);
  }

  #reset(pair: Pair): void {
    if (!this.#pairs.has(pair)) return;
    this.stats.reset++;
    this.#drop(pair);
    pair.client.resetAndDestroy();
    pair.upstream?.resetAndDestroy();
  }

  #drop(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    for (const timer of pair.timers) clearTimeout(timer);
    pair.timers.clear();
    pair.queues.up.length = 0;
    pair.queues.down.length = 0;
    if (!pair.client.destroyed) pair.client.destroy();
    if (pair.upstream && !pair.upstream.destroyed) pair.upstream.destroy();
  }
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  connected: boolean;
  upstreamClosed?: boolean;
  pendingConnect?: boolean;
  queues: { up: Array<{ chunk: Buffer; due: number }>; down: Array<{ chunk: Buffer; due: number }> };
  timers: Set<NodeJS.Timeout>;
}
