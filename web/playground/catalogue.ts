/** The bundled scenarios (scenarios/*.yaml), embedded at build time. */

export interface CatalogueEntry {
  /** The file name without `.yaml`. */
  readonly id: string;
  /** As reports name it: `scenarios/<id>.yaml`. */
  readonly file: string;
  readonly text: string;
}

const files = import.meta.glob('../../scenarios/*.yaml', { query: '?raw', import: 'default', eager: true }) as Record<
  string,
  string
>;

export const CATALOGUE: readonly CatalogueEntry[] = Object.entries(files)
  .map(([p, text]) => {
    const id = (p.split('/').pop() ?? p).replace(/\.yaml$/, '');
    return { id, file: `scenarios/${id}.yaml`, text };
  })
  .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
