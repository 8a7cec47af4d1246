/** The playground page (placeholder until the playground lands). */
import { render } from 'preact';

render(<p>dmabuf-check playground</p>, document.getElementById('app') as HTMLElement);
