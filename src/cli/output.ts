/**
 * Where the command line writes: results for people on stdout, `--json` documents on stdout (then
 * nothing else goes there), progress as bars on a terminal's stderr or as plain lines, warnings and
 * errors on stderr.
 */
import cliProgress from 'cli-progress';

export type ProgressMode = 'bar' | 'plain' | 'quiet';

export interface OutputFlags {
  readonly json?: boolean;
  readonly quiet?: boolean;
  readonly plain?: boolean;
}

/** A bar for one epoch (or any counted work); a no-op unless the output mode is 'bar'. */
export interface WorkBar {
  update(value: number, payload: Readonly<Record<string, string>>): void;
  stop(): void;
}

/** Typed arrays print as plain lists. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) && !(value instanceof DataView) ? Array.from(value as unknown as ArrayLike<number>) : value;
}

export class Output {
  readonly json: boolean;
  readonly mode: ProgressMode;
  private activeBar: cliProgress.SingleBar | null = null;

  constructor(flags: OutputFlags, stderrIsTTY = process.stderr.isTTY === true) {
    this.json = flags.json === true;
    this.mode = flags.quiet === true ? 'quiet' : flags.plain === true ? 'plain' : stderrIsTTY ? 'bar' : this.json ? 'quiet' : 'plain';
  }

  /** Progress and context lines: shown in plain and bar modes (on stderr when stdout carries JSON). */
  info(line: string): void {
    if (this.mode === 'quiet') return;
    this.writeAboveBar(line, this.json ? process.stderr : process.stdout);
  }

  /** Results for people: shown unless the output is JSON. */
  result(line: string): void {
    if (this.json) return;
    this.writeAboveBar(line, process.stdout);
  }

  /** The command's JSON document (with --json). */
  data(value: unknown): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value, jsonReplacer, 2)}\n`);
  }

  warn(line: string): void {
    this.writeAboveBar(`parsimony: warning: ${line}`, process.stderr);
  }

  /** A progress bar over `total` units with the given format (cli-progress placeholders). */
  bar(total: number, start: number, format: string, payload: Readonly<Record<string, string>>): WorkBar {
    if (this.mode !== 'bar') return { update: () => {}, stop: () => {} };
    const bar = new cliProgress.SingleBar({
      format, stream: process.stderr, hideCursor: true, barsize: 24, etaBuffer: 50, fps: 5,
      barCompleteChar: '\u2588', barIncompleteChar: '\u2591',
    });
    bar.start(total, start, payload);
    this.activeBar = bar;
    return {
      update: (value, p) => bar.update(value, p),
      stop: () => {
        bar.stop();
        if (this.activeBar === bar) this.activeBar = null;
      },
    };
  }

  /** Stops a bar left running by an error, so the terminal gets its cursor back. */
  close(): void {
    this.activeBar?.stop();
    this.activeBar = null;
  }

  private writeAboveBar(line: string, stream: NodeJS.WriteStream): void {
    if (this.activeBar !== null && stream === process.stderr) {
      process.stderr.write(`\r\x1b[2K${line}\n`);
      this.activeBar.render();
    } else {
      stream.write(`${line}\n`);
    }
  }
}
