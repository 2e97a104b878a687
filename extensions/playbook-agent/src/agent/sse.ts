// An incremental server-sent events parser (the WHATWG rules): bytes arrive
// in arbitrary pieces, lines end with \n, \r\n or \r (possibly split across
// pieces), an event is dispatched at an empty line, several data: lines are
// joined with \n, comments (":") and unknown fields are ignored.

export interface SseEvent {
  event: string;
  data: string;
}

export class SseParser {
  private buf = '';
  private data: string[] = [];
  private hasData = false;
  private event = '';

  /** Feeds a piece of the stream; returns the events it completed. */
  feed(piece: string): SseEvent[] {
    this.buf += piece;
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 13 && i === this.buf.length - 1) break; // \r at the end: maybe \r\n, wait
      this.line(this.buf.slice(start, i), out);
      if (c === 13 && this.buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buf = this.buf.slice(start);
    return out;
  }

  /** The stream ended: a last event without its blank line still counts. */
  end(): SseEvent[] {
    const out: SseEvent[] = [];
    if (this.buf !== '') {
      const rest = this.buf.endsWith('\r') ? this.buf.slice(0, -1) : this.buf;
      this.buf = '';
      this.line(rest, out);
    }
    this.dispatch(out);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      this.dispatch(out);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.hasData = true;
    } else if (field === 'event') {
      this.event = value;
    }
  }

  private dispatch(out: SseEvent[]): void {
    if (this.hasData) out.push({ event: this.event || 'message', data: this.data.join('\n') });
    this.data = [];
    this.hasData = false;
    this.event = '';
  }
}
