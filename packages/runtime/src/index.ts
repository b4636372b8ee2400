export {
  type BearerAuthOptions,
  type BearerRolesOptions,
  bearerAuth,
  bearerOf,
  bearerRoles,
  hasBearer,
  type RoleToken,
  type RouteAuth,
  sameSecret,
} from './auth.js';
export { type BudgetLease, InFlightBudget, type InFlightBudgetOptions } from './budget.js';
export { launchRedisServer, type RedisServerOptions, type RunningRedis, startRedis, waitForRedis } from './embedded-redis.js';
export { errorHandler } from './errors.js';
export { freePort } from './free-port.js';
export { type BoundAddress, listen, parseListenAddress } from './listen.js';
export {
  type ReadServiceMetricsOptions,
  readServiceMetrics,
  type ServiceRegistryOptions,
  serviceRegistry,
  type TierBytesSource,
  tierBytesCounter,
} from './metrics.js';
export {
  readServerTls,
  type ServerLimits,
  type ServerTlsFiles,
  type ServiceAppOptions,
  serviceApp,
} from './server.js';
export { type SignalSource, stopSignal } from './signals.js';
export { closeGracefully, exitSoon, stopWithin } from './stop.js';
