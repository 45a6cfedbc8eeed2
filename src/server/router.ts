// The route table: a tree of path segments with `{param}` wildcards. Hand-written
// rather than find-my-way because KrakenD's router semantics need two lookups
// that generic routers do not expose: the case-insensitive "fixed path" match
// that yields the canonical path to redirect to, and the trailing-slash twin.
// Static segments win over parameters; a parameter matches one non-empty segment.

interface Node<T> {
  statics: Map<string, Node<T>>;
  /** Lower-cased static keys -> the nodes they may stand for (for fixed-path lookups). */
  lowerStatics: Map<string, { key: string; node: Node<T> }[]>;
  param?: Node<T>;
  routes?: Map<string, Route<T>>;
}

interface Route<T> {
  value: T;
  paramNames: string[];
}

export type RouteResult<T> =
  | { kind: 'found'; value: T; params: Record<string, string> }
  | { kind: 'redirect'; path: string }
  | { kind: 'method-not-allowed'; allow: string[] }
  | { kind: 'not-found' };

export interface RouterOptions {
  redirectTrailingSlash: boolean;
  redirectFixedPath: boolean;
}

const PARAM = /^\{([^{}]+)\}$/;

function newNode<T>(): Node<T> {
  return { statics: new Map(), lowerStatics: new Map() };
}

/** Split '/a/b/' into ['a', 'b', ''], and '/' into ['']. */
export function splitPath(path: string): string[] {
  return path.slice(1).split('/');
}

export class Router<T> {
  private readonly root: Node<T> = newNode();
  private readonly opts: RouterOptions;

  constructor(opts: RouterOptions) {
    this.opts = opts;
  }

  add(path: string, method: string, value: T): void {
    let node = this.root;
    const paramNames: string[] = [];
    for (const seg of splitPath(path)) {
      const m = PARAM.exec(seg);
      if (m) {
        paramNames.push(m[1]);
        node = node.param ??= newNode();
        continue;
      }
      let child = node.statics.get(seg);
      if (!child) {
        child = newNode();
        node.statics.set(seg, child);
        const lower = seg.toLowerCase();
        const list = node.lowerStatics.get(lower) ?? [];
        list.push({ key: seg, node: child });
        node.lowerStatics.set(lower, list);
      }
      node = child;
    }
    node.routes ??= new Map();
    node.routes.set(method, { value, paramNames });
  }

  /** `segments` are the decoded path segments; `rawSegments` the same as received, for redirects. */
  find(method: string, segments: string[], rawSegments: string[]): RouteResult<T> {
    const captured: string[] = [];
    const node = exact(this.root, segments, 0, captured);
    const route = node?.routes?.get(method);
    if (route) return { kind: 'found', value: route.value, params: bind(route.paramNames, captured) };

    if (this.opts.redirectTrailingSlash) {
      const twin = trailingSlashTwin(rawSegments);
      if (twin) {
        const c = canonical(this.root, twin, 0, []);
        if (c && exactlyEqual(c.segments, twin) && c.node.routes?.has(method)) return { kind: 'redirect', path: '/' + twin.join('/') };
      }
    }
    if (this.opts.redirectFixedPath) {
      for (const candidate of [rawSegments, trailingSlashTwin(rawSegments)]) {
        if (!candidate) continue;
        const c = canonical(this.root, candidate, 0, []);
        if (c && c.node.routes?.has(method)) return { kind: 'redirect', path: '/' + c.segments.join('/') };
      }
    }
    if (node?.routes?.size) return { kind: 'method-not-allowed', allow: [...node.routes.keys()] };
    return { kind: 'not-found' };
  }

  /** Methods registered for this exact path (for OPTIONS answers). */
  methodsFor(segments: string[]): string[] {
    const node = exact(this.root, segments, 0, []);
    return node?.routes ? [...node.routes.keys()] : [];
  }
}

function exact<T>(node: Node<T>, segs: string[], i: number, captured: string[]): Node<T> | undefined {
  if (i === segs.length) return node.routes ? node : undefined;
  const seg = segs[i];
  const child = node.statics.get(seg);
  if (child) {
    const found = exact(child, segs, i + 1, captured);
    if (found) return found;
  }
  if (node.param && seg !== '') {
    captured.push(seg);
    const found = exact(node.param, segs, i + 1, captured);
    if (found) return found;
    captured.pop();
  }
  return undefined;
}

/** Case-insensitive match that rebuilds the path with the route's own spelling. */
function canonical<T>(node: Node<T>, segs: string[], i: number, out: string[]): { node: Node<T>; segments: string[] } | undefined {
  if (i === segs.length) return node.routes ? { node, segments: [...out] } : undefined;
  const seg = segs[i];
  for (const { key, node: child } of node.lowerStatics.get(seg.toLowerCase()) ?? []) {
    out.push(key);
    const found = canonical(child, segs, i + 1, out);
    out.pop();
    if (found) return found;
  }
  if (node.param && seg !== '') {
    out.push(seg);
    const found = canonical(node.param, segs, i + 1, out);
    out.pop();
    if (found) return found;
  }
  return undefined;
}

function trailingSlashTwin(segs: string[]): string[] | undefined {
  if (segs.length > 1 && segs[segs.length - 1] === '') return segs.slice(0, -1);
  if (segs.length === 1 && segs[0] === '') return undefined;
  return [...segs, ''];
}

function exactlyEqual(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

function bind(names: string[], values: string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) params[names[i]] = values[i];
  return params;
}
