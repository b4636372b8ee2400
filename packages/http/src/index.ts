export {
  BodyCutShort,
  HttpClient,
  type HttpClientOptions,
  type HttpMethod,
  type HttpResponse,
  type Received,
  type ReceiveOptions,
  type SendOptions,
  Unreachable,
} from './client.js';
