export { type RunningRedis, startRedis } from './embedded-redis.js';
export { freePort } from './free-port.js';
