import { loadDriver } from '../shared/load-driver.ts';

/** amqplib, the one place the rabbitmq adapter loads it (an optional peer: see load-driver.ts). */
export const amqp = await loadDriver('amqplib', 'zeroloss/rabbitmq', () => import('amqplib'));
