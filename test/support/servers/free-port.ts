export { freePort } from '../../../services/cli/src/free-port.js';
