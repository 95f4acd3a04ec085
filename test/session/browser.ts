// A browser as far as sessions go: one cookie jar, kept from the last
// Set-Cookie, sent with every request; `on` carries it to another app.
export class Browser {
  cookie: string | null = null;

  constructor(private readonly base: string) {}

  on(base: string): Browser {
    const b = new Browser(base);
    b.cookie = this.cookie;
    return b;
  }

  async request(method: 'GET' | 'POST', path: string, signal?: AbortSignal): Promise<{ status: number; body: { id?: string; items?: string[]; error?: { code: string; message: string } } | null }> {
    const res = await fetch(this.base + path, { method, headers: this.cookie ? { cookie: this.cookie } : {}, signal });
    const set = res.headers.getSetCookie();
    if (set.length > 0) this.cookie = set[set.length - 1]!.split(';', 1)[0]!;
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
}
