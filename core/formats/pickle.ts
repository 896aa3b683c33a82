// A restricted pickle reader: it interprets the opcodes of binary pickle protocols 2 to 5 (what
// torch.save writes; 2 is its default) into plain JS values and NEVER runs code. A pickle names
// Python callables (GLOBAL, STACK_GLOBAL) and calls them (REDUCE, NEWOBJ); here a name resolves only
// through the allow-list the caller passes, each entry a JS function that builds a value, and any
// other name is refused with the name in the message: the policy of torch.load(weights_only=True).
// Opcode reference: CPython's Lib/pickletools.py. Everything a pickle claims (lengths, memo indices,
// stack depth) is checked against the remaining input and the limits before anything is allocated.
//
// Values: None → null, bool → boolean, int → bigint, float → number, str → string, bytes and
// bytearray → Uint8Array, list → a JS array, tuple → PyTuple, dict → PyDict, set and frozenset →
// PySet, a global → PyGlobal, a persistent id → whatever `persistentLoad` returns. The reader itself
// never recurses into values, so a deeply nested (or self-referencing) pickle cannot exhaust the JS
// stack here; code walking the result must bound its own depth.

/** A pickle this reader refuses; `offset` is the byte of the opcode at fault. */
export class PickleError extends Error {
  constructor(message: string, readonly offset: number) {
    super(message);
    this.name = 'PickleError';
  }
}

/** A pickle longer than `PickleLimits.maxBytes` allows. */
export class PickleSizeError extends PickleError {
  constructor(readonly maxBytes: number, message: string, offset: number) {
    super(message, offset);
    this.name = 'PickleSizeError';
  }
}

/** A GLOBAL or STACK_GLOBAL naming a callable that is not on the allow-list. */
export class PickleGlobalError extends PickleError {
  constructor(readonly module: string, readonly qualifiedName: string, offset: number) {
    super(`the pickle calls ${showName(`${module}.${qualifiedName}`)}, which is not on this reader's allow-list; Ticket Lab does not run code from model files.`, offset);
    this.name = 'PickleGlobalError';
  }
}

/** A Python tuple (lists are plain JS arrays). */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** A Python dict (or a dict subclass an allow-listed global built, such as collections.OrderedDict). */
export class PyDict {
  /** Insertion order is kept, as in Python; keys compare as JS Map keys do (by value for str and int). */
  readonly entries = new Map<unknown, unknown>();
  /** What BUILD set on it (an OrderedDict's attributes, like torch's `_metadata`); undefined when none. */
  state: unknown = undefined;
  constructor(readonly className = 'dict') {}
}

/** A Python set or frozenset, its items in pickle order (not deduplicated). */
export class PySet {
  constructor(readonly items: unknown[], readonly frozen: boolean) {}
}

/** Builds the value of an allow-listed callable from the arguments REDUCE or NEWOBJ gives it. */
export type PickleCallable = (args: readonly unknown[]) => unknown;

/** An allow-listed global as it sits on the stack: the type of a storage, say, or a function to call. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string, readonly build: PickleCallable) {}
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
}

export interface PickleLimits {
  /** Opcodes executed. */
  maxOps: number;
  /** Values on the stack plus open MARKs. */
  maxStack: number;
  /** Distinct memo entries. */
  maxMemo: number;
  /** Bytes of one LONG1/LONG4 integer. */
  maxIntBytes: number;
  /** Bytes of the pickle itself, from where it starts. */
  maxBytes: number;
}

export const DEFAULT_PICKLE_LIMITS: PickleLimits = {
  maxOps: 100_000_000,
  maxStack: 100_000,
  maxMemo: 4_000_000,
  maxIntBytes: 1024,
  maxBytes: 100 * 2 ** 20,
};

export interface UnpickleOptions {
  /**
   * The allow-list: `module.name` (as the pickle spells them: "collections.OrderedDict") to the
   * function building its value. A Map, so that names like "constructor" find nothing.
   */
  globals?: ReadonlyMap<string, PickleCallable>;
  /** Resolves a BINPERSID id (torch's storages); without it a persistent id is refused. */
  persistentLoad?: (id: unknown) => unknown;
  limits?: Partial<PickleLimits>;
}

export interface UnpickleResult {
  value: unknown;
  /** The offset just after the STOP opcode. */
  end: number;
}

const HIGHEST_PROTOCOL = 5;
/** A GLOBAL's module or name line longer than this is no Python identifier path. */
const MAX_GLOBAL_LINE = 1024;

/** Opcodes that protocols 0 and 1 (or code execution) need and this reader refuses by name. */
const REFUSED_OPCODES = new Map<number, string>([
  [0x49, "INT ('I', text protocol 0)"], [0x4c, "LONG ('L', text protocol 0)"], [0x46, "FLOAT ('F', text protocol 0)"],
  [0x53, "STRING ('S', text protocol 0)"], [0x56, "UNICODE ('V', text protocol 0)"], [0x50, "PERSID ('P', text protocol 0)"],
  [0x67, "GET ('g', text protocol 0)"], [0x70, "PUT ('p', text protocol 0)"],
  [0x69, "INST ('i', instantiates a class)"], [0x6f, "OBJ ('o', instantiates a class)"],
  [0x82, 'EXT1 (the copyreg extension registry)'], [0x83, 'EXT2 (the copyreg extension registry)'], [0x84, 'EXT4 (the copyreg extension registry)'],
  [0x97, 'NEXT_BUFFER (an out-of-band buffer)'], [0x98, 'READONLY_BUFFER (an out-of-band buffer)'],
]);

function showName(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** A value's Python type, for messages (never its contents: those are attacker-sized). */
export function pyTypeName(value: unknown): string {
  if (value === null) return 'None';
  switch (typeof value) {
    case 'boolean': return 'bool';
    case 'bigint': return 'int';
    case 'number': return 'float';
    case 'string': return 'str';
    default: break;
  }
  if (value instanceof Uint8Array) return 'bytes';
  if (Array.isArray(value)) return 'list';
  if (value instanceof PyTuple) return 'tuple';
  if (value instanceof PyDict) return value.className;
  if (value instanceof PySet) return value.frozen ? 'frozenset' : 'set';
  if (value instanceof PyGlobal) return showName(value.fullName);
  return 'object';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Machine {
  private at: number;
  private readonly stop: number;
  private readonly view: DataView;
  private readonly stack: unknown[] = [];
  /** Stack lengths at each open MARK. */
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly limits: PickleLimits;
  /** The offset of the opcode being executed, for messages. */
  private op = 0;

  constructor(private readonly bytes: Uint8Array, start: number, private readonly options: UnpickleOptions) {
    this.limits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
    this.at = start;
    this.stop = Math.min(bytes.length, start + Math.max(0, this.limits.maxBytes));
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(message: string): never {
    throw new PickleError(`${message} (at byte ${this.op})`, this.op);
  }

  private tooLong(what: string): never {
    throw new PickleSizeError(this.limits.maxBytes, `${what} runs past the ${this.limits.maxBytes}-byte limit on the pickle (at byte ${this.op})`, this.op);
  }

  /** Reserves `n` bytes of input and returns where they start. */
  private take(n: number, what: string): number {
    if (n > this.stop - this.at) {
      if (this.stop < this.bytes.length) this.tooLong(what);
      this.fail(`${what} runs past the end of the pickle (${n} bytes claimed, ${this.stop - this.at} left); it is truncated or damaged`);
    }
    const start = this.at;
    this.at += n;
    return start;
  }

  private u8(what: string): number {
    return this.bytes[this.take(1, what)]!;
  }

  /** A length field: unsigned, of 1, 4 or 8 bytes; 8-byte lengths beyond 2^53 are refused. */
  private length(width: 1 | 4 | 8, what: string): number {
    const at = this.take(width, what);
    if (width === 1) return this.bytes[at]!;
    if (width === 4) return this.view.getUint32(at, true);
    const n = this.view.getBigUint64(at, true);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} claims ${n} bytes`);
    return Number(n);
  }

  private push(value: unknown): void {
    if (this.stack.length + this.marks.length >= this.limits.maxStack) {
      this.fail(`the pickle stacks more than ${this.limits.maxStack} values (nested too deep or built to exhaust memory)`);
    }
    this.stack.push(value);
  }

  private pop(what: string): unknown {
    const floor = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= floor) this.fail(`${what} finds no value on the stack`);
    return this.stack.pop();
  }

  private top(what: string): unknown {
    const floor = this.marks.length ? this.marks[this.marks.length - 1]! : 0;
    if (this.stack.length <= floor) this.fail(`${what} finds no value on the stack`);
    return this.stack[this.stack.length - 1];
  }

  /** The values pushed since the last MARK, which is closed. */
  private popMark(what: string): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) this.fail(`${what} has no MARK to close`);
    return this.stack.splice(mark);
  }

  private text(start: number, n: number, what: string): string {
    try {
      return utf8.decode(this.bytes.subarray(start, start + n));
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  private bytesOf(n: number, what: string): Uint8Array {
    const start = this.take(n, what);
    // A copy: values must not alias the file's buffer.
    return this.bytes.slice(start, start + n);
  }

  private line(what: string): string {
    const limit = Math.min(this.stop, this.at + MAX_GLOBAL_LINE + 1);
    let end = this.at;
    while (end < limit && this.bytes[end] !== 0x0a) end++;
    if (end >= limit) {
      if (limit === this.stop && this.stop < this.bytes.length) this.tooLong(what);
      this.fail(limit === this.stop ? `${what} runs past the end of the pickle; it is truncated or damaged` : `${what} has no line end within ${MAX_GLOBAL_LINE} bytes`);
    }
    const text = this.text(this.at, end - this.at, what);
    this.at = end + 1;
    return text;
  }

  private long(n: number, what: string): bigint {
    if (n > this.limits.maxIntBytes) this.fail(`${what} is a ${n}-byte integer, more than the ${this.limits.maxIntBytes} this reader accepts`);
    const start = this.take(n, what);
    if (n === 0) return 0n;
    let hex = '';
    for (let i = start + n - 1; i >= start; i--) hex += this.bytes[i]!.toString(16).padStart(2, '0');
    let value = BigInt(`0x${hex}`);
    if (this.bytes[start + n - 1]! & 0x80) value -= 1n << BigInt(8 * n);
    return value;
  }

  private resolveGlobal(module: string, name: string): PyGlobal {
    const build = this.options.globals?.get(`${module}.${name}`);
    if (build === undefined) throw new PickleGlobalError(module, name, this.op);
    return new PyGlobal(module, name, build);
  }

  private call(callable: unknown, args: unknown, what: string): unknown {
    if (!(callable instanceof PyGlobal)) this.fail(`${what} calls a ${pyTypeName(callable)}, not an allow-listed global`);
    if (!(args instanceof PyTuple)) this.fail(`${what} passes a ${pyTypeName(args)} as the arguments of ${showName(callable.fullName)}, not a tuple`);
    return callable.build(args.items);
  }

  private setItems(target: unknown, items: readonly unknown[], what: string): void {
    if (!(target instanceof PyDict)) this.fail(`${what} sets items on a ${pyTypeName(target)}, not a dict`);
    if (items.length % 2 !== 0) this.fail(`${what} has a key without a value`);
    for (let i = 0; i < items.length; i += 2) target.entries.set(items[i], items[i + 1]);
  }

  private memoize(index: number, value: unknown): void {
    if (!this.memo.has(index) && this.memo.size >= this.limits.maxMemo) {
      this.fail(`the pickle memoizes more than ${this.limits.maxMemo} values`);
    }
    this.memo.set(index, value);
  }

  private recall(index: number): unknown {
    if (!this.memo.has(index)) this.fail(`the pickle recalls memo entry ${index}, which was never stored`);
    return this.memo.get(index);
  }

  run(): UnpickleResult {
    let ops = 0;
    for (;;) {
      this.op = this.at;
      if (++ops > this.limits.maxOps) this.fail(`the pickle runs more than ${this.limits.maxOps} opcodes`);
      const code = this.u8('an opcode');
      switch (code) {
        case 0x80: { // PROTO
          const protocol = this.u8('PROTO');
          if (protocol < 2 || protocol > HIGHEST_PROTOCOL) this.fail(`the pickle is protocol ${protocol}; this reader reads protocols 2 to ${HIGHEST_PROTOCOL}`);
          break;
        }
        case 0x95: // FRAME: a length hint for buffered reading; the whole pickle is in memory.
          this.take(8, 'FRAME');
          break;
        case 0x2e: { // STOP
          const value = this.pop('STOP');
          if (this.stack.length || this.marks.length) this.fail(`STOP leaves ${this.stack.length} values and ${this.marks.length} open MARKs behind`);
          return { value, end: this.at };
        }
        case 0x28: // MARK
          if (this.stack.length + this.marks.length >= this.limits.maxStack) this.fail(`the pickle stacks more than ${this.limits.maxStack} values and MARKs`);
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          this.pop('POP');
          break;
        case 0x31: // POP_MARK
          this.popMark('POP_MARK');
          break;
        case 0x32: // DUP
          this.push(this.top('DUP'));
          break;

        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4a: this.push(BigInt(this.view.getInt32(this.take(4, 'BININT'), true))); break;
        case 0x4b: this.push(BigInt(this.u8('BININT1'))); break;
        case 0x4d: this.push(BigInt(this.view.getUint16(this.take(2, 'BININT2'), true))); break;
        case 0x8a: this.push(this.long(this.length(1, 'LONG1'), 'LONG1')); break;
        case 0x8b: { // LONG4: a signed length
          const n = this.view.getInt32(this.take(4, 'LONG4'), true);
          if (n < 0) this.fail(`LONG4 claims a negative length ${n}`);
          this.push(this.long(n, 'LONG4'));
          break;
        }
        case 0x47: this.push(this.view.getFloat64(this.take(8, 'BINFLOAT'), false)); break;

        case 0x8c: case 0x58: case 0x8d: { // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
          const what = code === 0x8c ? 'SHORT_BINUNICODE' : code === 0x58 ? 'BINUNICODE' : 'BINUNICODE8';
          const n = this.length(code === 0x8c ? 1 : code === 0x58 ? 4 : 8, what);
          this.push(this.text(this.take(n, what), n, what));
          break;
        }
        case 0x55: case 0x54: { // SHORT_BINSTRING, BINSTRING: Python 2 str, read as torch.load does (UTF-8)
          const what = code === 0x55 ? 'SHORT_BINSTRING' : 'BINSTRING';
          let n: number;
          if (code === 0x55) n = this.length(1, what);
          else {
            n = this.view.getInt32(this.take(4, what), true);
            if (n < 0) this.fail(`BINSTRING claims a negative length ${n}`);
          }
          this.push(this.text(this.take(n, what), n, what));
          break;
        }
        case 0x43: this.push(this.bytesOf(this.length(1, 'SHORT_BINBYTES'), 'SHORT_BINBYTES')); break;
        case 0x42: this.push(this.bytesOf(this.length(4, 'BINBYTES'), 'BINBYTES')); break;
        case 0x8e: this.push(this.bytesOf(this.length(8, 'BINBYTES8'), 'BINBYTES8')); break;
        case 0x96: this.push(this.bytesOf(this.length(8, 'BYTEARRAY8'), 'BYTEARRAY8')); break;

        case 0x29: this.push(new PyTuple([])); break; // EMPTY_TUPLE
        case 0x74: this.push(new PyTuple(this.popMark('TUPLE'))); break;
        case 0x85: this.push(new PyTuple([this.pop('TUPLE1')])); break;
        case 0x86: { // TUPLE2
          const b = this.pop('TUPLE2');
          this.push(new PyTuple([this.pop('TUPLE2'), b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop('TUPLE3');
          const b = this.pop('TUPLE3');
          this.push(new PyTuple([this.pop('TUPLE3'), b, c]));
          break;
        }
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x6c: this.push(this.popMark('LIST')); break;
        case 0x61: { // APPEND
          const value = this.pop('APPEND');
          const list = this.top('APPEND');
          if (!Array.isArray(list)) this.fail(`APPEND appends to a ${pyTypeName(list)}, not a list`);
          list.push(value);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark('APPENDS');
          const list = this.top('APPENDS');
          if (!Array.isArray(list)) this.fail(`APPENDS appends to a ${pyTypeName(list)}, not a list`);
          for (const item of items) list.push(item);
          break;
        }
        case 0x7d: this.push(new PyDict()); break; // EMPTY_DICT
        case 0x64: { // DICT
          const dict = new PyDict();
          this.setItems(dict, this.popMark('DICT'), 'DICT');
          this.push(dict);
          break;
        }
        case 0x73: { // SETITEM
          const value = this.pop('SETITEM');
          const key = this.pop('SETITEM');
          this.setItems(this.top('SETITEM'), [key, value], 'SETITEM');
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark('SETITEMS');
          this.setItems(this.top('SETITEMS'), items, 'SETITEMS');
          break;
        }
        case 0x8f: this.push(new PySet([], false)); break; // EMPTY_SET
        case 0x90: { // ADDITEMS
          const items = this.popMark('ADDITEMS');
          const set = this.top('ADDITEMS');
          if (!(set instanceof PySet) || set.frozen) this.fail(`ADDITEMS adds to a ${pyTypeName(set)}, not a set`);
          for (const item of items) set.items.push(item);
          break;
        }
        case 0x91: this.push(new PySet(this.popMark('FROZENSET'), true)); break;

        case 0x71: this.memoize(this.u8('BINPUT'), this.top('BINPUT')); break;
        case 0x72: this.memoize(this.length(4, 'LONG_BINPUT'), this.top('LONG_BINPUT')); break;
        case 0x94: this.memoize(this.memo.size, this.top('MEMOIZE')); break;
        case 0x68: this.push(this.recall(this.u8('BINGET'))); break;
        case 0x6a: this.push(this.recall(this.length(4, 'LONG_BINGET'))); break;

        case 0x63: { // GLOBAL: "module\nname\n"
          const module = this.line('GLOBAL');
          this.push(this.resolveGlobal(module, this.line('GLOBAL')));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop('STACK_GLOBAL');
          const module = this.pop('STACK_GLOBAL');
          if (typeof module !== 'string' || typeof name !== 'string') this.fail(`STACK_GLOBAL names a global by a ${pyTypeName(module)} and a ${pyTypeName(name)}, not two strings`);
          this.push(this.resolveGlobal(module, name));
          break;
        }
        case 0x52: { // REDUCE
          const args = this.pop('REDUCE');
          this.push(this.call(this.pop('REDUCE'), args, 'REDUCE'));
          break;
        }
        case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
          const args = this.pop('NEWOBJ');
          this.push(this.call(this.pop('NEWOBJ'), args, 'NEWOBJ'));
          break;
        }
        case 0x92: { // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs), without keyword arguments here
          const kwargs = this.pop('NEWOBJ_EX');
          const args = this.pop('NEWOBJ_EX');
          const cls = this.pop('NEWOBJ_EX');
          if (!(kwargs instanceof PyDict) || kwargs.entries.size) this.fail('NEWOBJ_EX passes keyword arguments, which this reader does not support');
          this.push(this.call(cls, args, 'NEWOBJ_EX'));
          break;
        }
        case 0x62: { // BUILD: only a dict's attributes (torch's OrderedDict._metadata) are set here
          const state = this.pop('BUILD');
          const target = this.top('BUILD');
          if (!(target instanceof PyDict)) this.fail(`BUILD sets the state of a ${pyTypeName(target)}; this reader only sets a dict's attributes`);
          target.state = state;
          break;
        }
        case 0x51: { // BINPERSID
          const id = this.pop('BINPERSID');
          if (!this.options.persistentLoad) this.fail('the pickle refers to a persistent id, which this reader has no way to resolve');
          this.push(this.options.persistentLoad(id));
          break;
        }
        default: {
          const refused = REFUSED_OPCODES.get(code);
          if (refused !== undefined) this.fail(`the pickle uses opcode ${refused}, which this reader does not support`);
          const printable = code >= 0x20 && code < 0x7f ? ` ('${String.fromCharCode(code)}')` : '';
          this.fail(`unknown pickle opcode 0x${code.toString(16).padStart(2, '0')}${printable}`);
        }
      }
    }
  }
}

/** Unpickles the pickle starting at `start` (further data may follow it: torch's legacy format). */
export function unpickleAt(bytes: Uint8Array, start: number, options: UnpickleOptions = {}): UnpickleResult {
  return new Machine(bytes, start, options).run();
}

/** Unpickles `bytes`, which must hold exactly one pickle. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): unknown {
  const { value, end } = unpickleAt(bytes, 0, options);
  if (end !== bytes.length) throw new PickleError(`${bytes.length - end} bytes follow the pickle's STOP opcode; it is damaged`, end);
  return value;
}
