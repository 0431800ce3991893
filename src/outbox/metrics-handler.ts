import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

/** A node:http handler serving the registry at /metrics in the Prometheus text format. */
export function metricsHandler(registry: Registry) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.url !== '/metrics' && req.url !== '/') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (error: Error) => res.writeHead(500).end(error.message),
    );
  };
}
