/**
 * `zeroloss/rabbitmq`: RabbitMQ stream queues as the transport, through `amqplib` (an optional peer: install it).
 *
 *   const transport = rabbitmq('amqp://guest:guest@127.0.0.1:5672')
 */
export { rabbitmq, type RabbitMqOptions, type RabbitMqTransport } from '../adapters/rabbitmq/rabbitmq-transport.ts';
