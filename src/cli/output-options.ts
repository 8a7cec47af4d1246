/**
 * The options `--trace`, `--html` and `--mermaid` (outputs.ts writes what
 * they ask for): apart, so that `--help` does not load the renderers.
 */
import { type Command, Option } from 'commander';

export interface OutputFlags {
  trace?: string;
  html?: string;
  mermaid?: boolean;
}

/** `--trace`, `--html`, `--mermaid` for `check`. */
export function addCheckOutputOptions(cmd: Command): Command {
  return cmd
    .option(
      '--trace <file>',
      "write the counterexample's trace as JSON to this file (several scenarios: out.json → out.<name>.json)",
    )
    .option(
      '--html <file>',
      "write the counterexample's trace as one self-contained HTML page, the trace viewer (several scenarios: out.html → out.<name>.html)",
    )
    .addOption(
      new Option(
        '--mermaid',
        'print each counterexample as a Mermaid sequenceDiagram on stdout (the reports go to stderr)',
      ).conflicts('json'),
    );
}

/** `--html`, `--mermaid` for `replay` (which has `--trace` already). */
export function addReplayOutputOptions(cmd: Command): Command {
  return cmd
    .option('--html <file>', 'also write the trace as one self-contained HTML page (the trace viewer)')
    .addOption(
      new Option('--mermaid', 'print the trace as a Mermaid sequenceDiagram instead of the step list').conflicts(
        'json',
      ),
    );
}
