export { HttpClient, type HttpClientOptions, type HttpMethod, type HttpResponse, type SendOptions, Unreachable } from './client.js';
