// A small typed client for the Helmdesk REST API (docs/api.md): JSON in and out,
// bearer tokens, and one error type carrying the server's stable code and field.

export interface ApiErrorBody {
  code: string;
  message: string;
  field?: string;
}

/** An API error: the HTTP status plus the server's {"code","message","field"}. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;
  /** The whole error body, for endpoints that say more (e.g. per-row import results). */
  readonly body?: Record<string, unknown>;

  constructor(status: number, body: ApiErrorBody, raw?: Record<string, unknown>) {
    super(body.message || body.code);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code;
    this.field = body.field || undefined;
    this.body = raw;
  }
}

/** Thrown when the server cannot be reached at all (the network is down). */
export const NETWORK_ERROR = 'network_error';

export interface RequestOptions {
  query?: Record<string, string | number | undefined | null>;
  /** Raw body (e.g. CSV) with its content type instead of JSON. */
  raw?: { body: string; contentType: string };
  signal?: AbortSignal;
}

export type Fetcher = typeof fetch;

export interface ApiClientOptions {
  base?: string;
  token?: () => string | null | undefined;
  /** Called on 401 for a request that carried a token (the sign-in expired). */
  onUnauthorized?: () => void;
  fetch?: Fetcher;
}

export class ApiClient {
  readonly base: string;
  private readonly opts: ApiClientOptions;

  constructor(opts: ApiClientOptions = {}) {
    this.base = (opts.base ?? '').replace(/\/$/, '');
    this.opts = opts;
  }

  url(path: string, query?: RequestOptions['query']): string {
    let u = this.base + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
      }
      const s = q.toString();
      if (s) u += (u.includes('?') ? '&' : '?') + s;
    }
    return u;
  }

  async request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const token = this.opts.token?.();
    if (token) headers.Authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (opts.raw) {
      headers['Content-Type'] = opts.raw.contentType;
      payload = opts.raw.body;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const f = this.opts.fetch ?? fetch;
    let res: Response;
    try {
      res = await f(this.url(path, opts.query), { method, headers, body: payload, signal: opts.signal, credentials: 'omit' });
    } catch (e) {
      if ((e as Error)?.name === 'AbortError') throw e;
      throw new ApiError(0, { code: NETWORK_ERROR, message: 'The server cannot be reached. Check your connection.' });
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let data: unknown = undefined;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = undefined;
      }
    }
    if (!res.ok) {
      const b = (data && typeof data === 'object' ? data : {}) as Partial<ApiErrorBody>;
      const err = new ApiError(res.status, {
        code: b.code || `http_${res.status}`,
        message: b.message || res.statusText || `HTTP ${res.status}`,
        field: b.field,
      }, b as Record<string, unknown>);
      if (res.status === 401 && token) this.opts.onUnauthorized?.();
      throw err;
    }
    return data as T;
  }

  get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('GET', path, undefined, { query });
  }
  post<T>(path: string, body?: unknown, opts?: RequestOptions): Promise<T> {
    return this.request<T>('POST', path, body ?? {}, opts);
  }
  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PUT', path, body ?? {});
  }
  patch<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body ?? {});
  }
  del<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }
}

/** The WebSocket URL for a path on the API's origin, with the token as access_token. */
export function socketURL(base: string, path: string, token: string, loc: { protocol: string; host: string } = location): string {
  let origin: string;
  if (base) {
    const u = new URL(base);
    origin = (u.protocol === 'https:' ? 'wss://' : 'ws://') + u.host;
  } else {
    origin = (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host;
  }
  return `${origin}${path}?access_token=${encodeURIComponent(token)}`;
}
