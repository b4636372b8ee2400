export { freePort } from '@ferry/runtime';
