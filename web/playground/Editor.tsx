/**
 * A plain textarea with line numbers and marked lines: the gutter and the
 * marks sit beside and behind the (transparent) textarea and follow its
 * scrolling. No wrapping, one fixed line height, so line N is at N × height.
 */
import type { Ref } from 'preact';
import { useState } from 'preact/hooks';
import type { Issue } from './validate.ts';

/** Must match `.editor` in style.css. */
const LINE_HEIGHT = 20;
const PAD = 8;

export interface EditorProps {
  readonly value: string;
  readonly issues: readonly Issue[];
  readonly onInput: (text: string) => void;
  readonly onRun: () => void;
  readonly textareaRef: Ref<HTMLTextAreaElement>;
}

export function Editor({ value, issues, onInput, onRun, textareaRef }: EditorProps) {
  const [scroll, setScroll] = useState({ top: 0, left: 0 });
  const lines = value.split('\n').length;
  const byLine = new Map<number, string[]>();
  for (const i of issues) byLine.set(i.line, [...(byLine.get(i.line) ?? []), `${i.line}:${i.col}: ${i.message}`]);
  const numbers = [];
  for (let n = 1; n <= Math.max(lines, 1); n++) {
    const msgs = byLine.get(n);
    numbers.push(
      <div
        key={n}
        class={msgs ? 'gutter-line error' : 'gutter-line'}
        data-testid={msgs ? 'gutter-error' : undefined}
        data-line={n}
        title={msgs?.join('\n')}
      >
        {msgs ? '● ' : ''}
        {n}
      </div>,
    );
  }
  return (
    <div class="editor" data-testid="editor-box">
      <div class="gutter" aria-hidden="true" data-testid="gutter">
        <div style={{ transform: `translateY(${-scroll.top}px)`, paddingTop: `${PAD}px` }}>{numbers}</div>
      </div>
      <div class="code">
        <div class="backdrop" aria-hidden="true">
          {[...byLine.keys()].map((n) => (
            <div
              key={n}
              class="line-mark"
              data-testid="line-mark"
              data-line={n}
              style={{ top: `${PAD + (n - 1) * LINE_HEIGHT - scroll.top}px` }}
            />
          ))}
        </div>
        <textarea
          ref={textareaRef}
          data-testid="editor"
          aria-label="Scenario (YAML)"
          spellcheck={false}
          autocomplete="off"
          wrap="off"
          placeholder="Paste a scenario (YAML) here, or pick one from the catalogue."
          value={value}
          onInput={(e) => onInput((e.currentTarget as HTMLTextAreaElement).value)}
          onScroll={(e) => {
            const t = e.currentTarget as HTMLTextAreaElement;
            setScroll({ top: t.scrollTop, left: t.scrollLeft });
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              onRun();
            }
          }}
        />
      </div>
    </div>
  );
}

/** Puts the caret at line:col (1-based) and scrolls it into view. */
export function gotoLine(t: HTMLTextAreaElement, line: number, col: number): void {
  const lines = t.value.split('\n');
  let off = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) off += (lines[i]?.length ?? 0) + 1;
  off += Math.max(0, Math.min(col - 1, lines[line - 1]?.length ?? 0));
  t.focus();
  t.setSelectionRange(off, off);
  const top = PAD + (line - 1) * LINE_HEIGHT;
  if (top < t.scrollTop || top + LINE_HEIGHT > t.scrollTop + t.clientHeight)
    t.scrollTop = Math.max(0, top - t.clientHeight / 2);
}
