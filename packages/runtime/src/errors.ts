import { errorBody, httpStatusOf, type Logger } from '@ferry/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/**
 * The error handler of a JSON service: the status from core's one table (HTTP_STATUS) and a body
 * `{ error: <code>, message }` that clients turn back into the same error (errorFromResponse).
 * A 5xx is logged with its route; what is not Ferry's own error says only "internal error".
 */
export function errorHandler(log: Logger): (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => void {
  return (err, req, reply) => {
    const status = httpStatusOf(err);
    if (status >= 500) log.error({ err, method: req.method, route: req.routeOptions.url }, 'request failed');
    if (status === 503) reply.header('retry-after', '1');
    void reply.code(status).send(errorBody(err));
  };
}
