/**
 * Kernel error numbers, as the model returns them: negative values, like the
 * kernel's `-ENODEV`. Only the ones the reference (§10) asks the model to
 * reproduce are listed.
 *
 * Models: include/uapi/asm-generic/errno-base.h, errno.h, include/linux/errno.h
 */
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const EMFILE = 24;
export const ENOTTY = 25;
export const EDEADLK = 35;
export const EOVERFLOW = 75;
export const EOPNOTSUPP = 95;
export const EALREADY = 114;
export const ERESTARTSYS = 512;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [EINTR]: 'EINTR',
  [EIO]: 'EIO',
  [EBADF]: 'EBADF',
  [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM',
  [EFAULT]: 'EFAULT',
  [EBUSY]: 'EBUSY',
  [EEXIST]: 'EEXIST',
  [ENODEV]: 'ENODEV',
  [EINVAL]: 'EINVAL',
  [EMFILE]: 'EMFILE',
  [ENOTTY]: 'ENOTTY',
  [EDEADLK]: 'EDEADLK',
  [EOVERFLOW]: 'EOVERFLOW',
  [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EALREADY]: 'EALREADY',
  [ERESTARTSYS]: 'ERESTARTSYS',
};

/** `-19` → `"-ENODEV"`; `0` → `"0"`. */
export function errname(err: number): string {
  if (err >= 0) return String(err);
  const n = NAMES[-err];
  return n ? `-${n}` : String(err);
}

/** A kernel-style result: a value, or a negative errno (`IS_ERR` in C). */
export type Result<T> = T | number;

/** `IS_ERR()` for {@link Result}: errors are plain negative numbers. */
export function isErr<T>(r: Result<T>): r is number {
  return typeof r === 'number' && r < 0;
}
