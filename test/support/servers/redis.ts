// The tests use the same private redis-server launcher as `ferry demo`.
export { type RunningRedis, startRedis } from '@ferry/runtime';
