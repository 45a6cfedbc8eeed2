// The configuration of last resort: no endpoints, only the built-in ones, and
// /__ready answers 503 so orchestrators keep traffic away until a real
// configuration arrives.

export function embeddedDefault(): Record<string, unknown> {
  return { version: 3, name: 'portico embedded default', endpoints: [] };
}
