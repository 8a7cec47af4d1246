/**
 * The whole machine after the selected step (the step's `world`): threads,
 * buffers with their backing frames, frames, importer translations (stale
 * ones marked), locks, fences and reservation lists. Rows that the step
 * changed are marked. Scenario strings are text nodes only.
 */
import type { ComponentChildren } from 'preact';
import type { Trace, TraceStep } from '../../src/trace/trace.ts';
import type { WorldState, WorldTranslation } from '../../src/trace/world.ts';

function changed<T>(prev: readonly T[] | undefined, cur: readonly T[], key: (x: T) => string): Set<string> {
  const before = new Map((prev ?? []).map((x) => [key(x), JSON.stringify(x)]));
  const out = new Set<string>();
  if (!prev) return out;
  for (const x of cur) {
    const k = key(x);
    if (before.get(k) !== JSON.stringify(x)) out.add(k);
  }
  return out;
}

function Section(props: { title: string; testid: string; count: number; note?: string; children: ComponentChildren }) {
  return (
    <section class="dv-section" data-testid={props.testid}>
      <h3>
        {props.title} <span class="dv-count">{props.count}</span>
        {props.note ? <span class="dv-note">{props.note}</span> : null}
      </h3>
      {props.count === 0 ? <p class="dv-none">none</p> : props.children}
    </section>
  );
}

const trKey = (t: WorldTranslation) => `${t.kind} ${t.importer} ${t.buffer} ${t.page} ${t.pfn} ${t.gen}`;
const KIND_NAME: Record<string, string> = { spte: 'SPTE', pte: 'PTE', dma: 'DMA' };

export function StatePanel({ trace, step, prev }: { trace: Trace; step: TraceStep; prev: TraceStep | undefined }) {
  const w: WorldState | undefined = step.world;
  const p = prev?.world;
  if (!w) {
    return (
      <div class="dv-state" data-testid="state-panel">
        <p class="dv-none">This trace has no machine state per step (trace format version {String(trace.version)}).</p>
      </div>
    );
  }
  const chThreads = changed(p?.threads, w.threads, (x) => x.name);
  const chBuffers = changed(p?.buffers, w.buffers, (x) => x.name);
  const chFrames = changed(p?.frames, w.frames, (x) => x.pfn);
  const chLocks = changed(p?.locks, w.locks, (x) => x.name);
  const chFences = changed(p?.fences, w.fences, (x) => x.name);
  const chResv = changed(p?.resv, w.resv, (x) => x.name);
  const chTr = changed(p?.translations, w.translations, trKey);
  const frameGen = new Map(w.frames.map((f) => [f.pfn, f]));
  const stale = w.translations.filter((t) => t.stale).length;
  const held = w.locks.filter((l) => l.owner !== null || l.readers.length > 0).length;
  const mark = (set: Set<string>, k: string) => (set.has(k) ? 'is-changed' : undefined);

  return (
    <div class="dv-state" data-testid="state-panel" data-step={step.n}>
      <p class="dv-state-title">
        state after step {step.n}
        {w.jiffies ? <span class="dv-note">jiffies {w.jiffies}</span> : null}
        <span class="dv-note">▌ changed by this step</span>
      </p>

      <Section title="threads" testid="state-threads" count={w.threads.length}>
        <table>
          <tbody>
            {w.threads.map((t) => (
              <tr key={t.name} class={mark(chThreads, t.name)} data-testid="thread-row" data-thread={t.name}>
                <td class="dv-name">{t.name}</td>
                <td>{t.done ? <span class="dv-dim">done</span> : t.op || <span class="dv-dim">—</span>}</td>
                <td>
                  {t.held.length ? (
                    <span class="dv-held">holds {t.held.join(', ')}</span>
                  ) : (
                    <span class="dv-dim">no locks</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <Section title="buffers" testid="state-buffers" count={w.buffers.length}>
        {w.buffers.map((b) => (
          <div key={b.name} class={`dv-buf ${mark(chBuffers, b.name) ?? ''}`} data-testid="buffer" data-buffer={b.name}>
            <div>
              <span class="dv-name">{b.name}</span> <span class="dv-dim">({b.exporter})</span> refcount {b.refcount}
              {b.released ? <span class="dv-bad"> released</span> : null}
              {b.vmaps ? <span> · vmaps {b.vmaps}</span> : null}
            </div>
            <div class="dv-sub">
              backing:{' '}
              {b.frames === null ? (
                <span class="dv-dim">not said by the exporter</span>
              ) : b.frames.length === 0 ? (
                <span class="dv-dim">none</span>
              ) : (
                b.frames.map((f, i) => (
                  <span key={`${f.pfn}-${i}`} class="dv-frame-ref">
                    page {i}: {f.pfn} gen {f.gen}
                    {frameGen.get(f.pfn)?.state ? <span class="dv-dim"> [{frameGen.get(f.pfn)?.state}]</span> : null}
                    {i < (b.frames?.length ?? 0) - 1 ? ', ' : ''}
                  </span>
                ))
              )}
            </div>
            {b.attachments.length > 0 && (
              <div class="dv-sub">
                attachments:{' '}
                {b.attachments.map((a, i) => (
                  <span key={a.name}>
                    {a.name} <span class="dv-dim">({a.dynamic ? 'dynamic' : 'static'})</span>
                    {a.pins ? ` pins ${a.pins}` : ''}
                    {a.mappings ? ` mapped ${a.mappings}` : ''}
                    {i < b.attachments.length - 1 ? ', ' : ''}
                  </span>
                ))}
              </div>
            )}
          </div>
        ))}
      </Section>

      <Section title="frames" testid="state-frames" count={w.frames.length}>
        <table>
          <thead>
            <tr>
              <th>pfn</th>
              <th>pool</th>
              <th>state</th>
              <th>gen</th>
              <th>owner</th>
            </tr>
          </thead>
          <tbody>
            {w.frames.map((f) => (
              <tr key={f.pfn} class={mark(chFrames, f.pfn)} data-testid="frame" data-pfn={f.pfn} data-state={f.state}>
                <td>{f.pfn}</td>
                <td>{f.pool}</td>
                <td>
                  <span class={`dv-badge st-${f.state}`}>{f.state}</span>
                </td>
                <td>{f.gen}</td>
                <td class="dv-wrap">{f.owner}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <Section
        title="translations"
        testid="state-translations"
        count={w.translations.length}
        note={stale ? `${stale} stale` : undefined}
      >
        <table>
          <thead>
            <tr>
              <th>kind</th>
              <th>importer</th>
              <th>maps</th>
              <th>pfn</th>
              <th>gen</th>
              <th>state</th>
            </tr>
          </thead>
          <tbody>
            {w.translations.map((t) => {
              const f = frameGen.get(t.pfn);
              return (
                <tr
                  key={trKey(t)}
                  class={`${mark(chTr, trKey(t)) ?? ''} ${t.stale ? 'is-stale' : ''}`}
                  data-testid="translation"
                  data-stale={t.stale ? 'true' : 'false'}
                  data-kind={t.kind}
                >
                  <td>{KIND_NAME[t.kind] ?? t.kind}</td>
                  <td>{t.importer}</td>
                  <td>
                    {t.buffer} page {t.page}
                  </td>
                  <td>{t.pfn}</td>
                  <td>
                    {t.gen}
                    {f && f.gen !== t.gen ? (
                      <span class="dv-bad" title="the frame's generation now">
                        {' '}
                        (now {f.gen})
                      </span>
                    ) : null}
                  </td>
                  <td>
                    {t.state}
                    {t.stale ? <span class="dv-badge st-stale">STALE</span> : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </Section>

      <Section title="locks" testid="state-locks" count={w.locks.length} note={`${held} held`}>
        <table>
          <tbody>
            {w.locks.map((l) => {
              const holder = l.owner ?? (l.readers.length ? `${l.readers.join(', ')} (read)` : null);
              return (
                <tr key={l.name} class={mark(chLocks, l.name)} data-testid="lock" data-lock={l.name}>
                  <td class="dv-name" title={`lockdep class ${l.class}`}>
                    {l.name}
                  </td>
                  <td>
                    {holder !== null ? <span class="dv-held">held by {holder}</span> : <span class="dv-dim">free</span>}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </Section>

      <Section title="fences" testid="state-fences" count={w.fences.length}>
        <table>
          <tbody>
            {w.fences.map((f) => (
              <tr key={f.name} class={mark(chFences, f.name)} data-testid="fence" data-fence={f.name}>
                <td class="dv-name">{f.name}</td>
                <td>
                  {f.signaled ? <span class="dv-good">signalled</span> : <span class="dv-warn">unsignalled</span>}
                </td>
                <td>{f.error ? <span class="dv-bad">error {f.error}</span> : null}</td>
                <td class="dv-dim">refcount {f.refcount}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <Section title="reservation lists" testid="state-resv" count={w.resv.length}>
        {w.resv.map((r) => (
          <div key={r.name} class={`dv-sub ${mark(chResv, r.name) ?? ''}`} data-testid="resv" data-resv={r.name}>
            <span class="dv-name">{r.name}</span>:{' '}
            {r.fences.length === 0 ? (
              <span class="dv-dim">empty</span>
            ) : (
              r.fences.map((f, i) => (
                <span key={`${f.fence}-${i}`}>
                  {f.fence} <span class="dv-dim">{f.usage}</span>{' '}
                  {f.signaled ? <span class="dv-good">signalled</span> : <span class="dv-warn">unsignalled</span>}
                  {i < r.fences.length - 1 ? '; ' : ''}
                </span>
              ))
            )}
          </div>
        ))}
      </Section>

      <details class="dv-section" data-testid="state-touched">
        <summary>objects this step touched ({Object.keys(step.state).length})</summary>
        <pre class="dv-json">{JSON.stringify(step.state, null, 1)}</pre>
      </details>
    </div>
  );
}
