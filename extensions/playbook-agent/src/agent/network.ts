// Why a request never got an answer, in a word when there is one: shared by
// the gateway client (gateway.ts) and the model client (llm.ts). No imports.

/**
 * The reason of a failed fetch: undici reports "fetch failed" with the real
 * reason (ECONNREFUSED, ENOTFOUND, …) as its cause; that code, else the
 * cause's message, else the error's own message.
 */
export function networkReason(err: unknown): string {
  const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    return typeof code === 'string' && code ? code : cause.message;
  }
  return err instanceof Error ? err.message : String(err);
}
