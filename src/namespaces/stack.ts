// Composing the compiled namespaces of one place (the service, an endpoint, a
// backend) into one guard and one middleware, in registry order.

import type { Proxy } from '../proxy/types.ts';
import type { CompileContext, EarlyAnswer, Guard, Middleware, Namespace, NamespaceUse } from './namespace.ts';

export interface Stack {
  guard: Guard | undefined;
  middleware: Middleware | undefined;
}

/** `resolve` finds a use's module (registry.namespaceNamed). */
export function compileStack(uses: readonly NamespaceUse[], ctx: CompileContext, resolve: (name: string) => Namespace): Stack {
  const guards: Guard[] = [];
  const middlewares: Middleware[] = [];
  for (const use of uses) {
    const compiled = resolve(use.name).compile?.(use.options, ctx);
    if (compiled?.guard) guards.push(compiled.guard);
    if (compiled?.middleware) middlewares.push(compiled.middleware);
  }
  return { guard: combineGuards(guards), middleware: combineMiddlewares(middlewares) };
}

/** Guards in order; the first that answers or throws ends the request. Sync guards cost no promise. */
export function combineGuards(guards: readonly (Guard | undefined)[]): Guard | undefined {
  const list = guards.filter((g): g is Guard => g !== undefined);
  if (list.length === 0) return undefined;
  if (list.length === 1) return list[0];
  return (req) => runFrom(list, 0, req);
}

function runFrom(guards: readonly Guard[], start: number, req: Parameters<Guard>[0]): ReturnType<Guard> {
  for (let i = start; i < guards.length; i++) {
    const r = guards[i](req);
    if (r === undefined) continue;
    if (r instanceof Promise) {
      const next = i + 1;
      return r.then((a: EarlyAnswer | undefined) => (a !== undefined ? a : runFrom(guards, next, req)));
    }
    return r;
  }
  return undefined;
}

/** The first middleware wraps outermost. */
export function combineMiddlewares(list: readonly (Middleware | undefined)[]): Middleware | undefined {
  const present = list.filter((m): m is Middleware => m !== undefined);
  if (present.length === 0) return undefined;
  return (next: Proxy) => present.reduceRight((inner, wrap) => wrap(inner), next);
}
