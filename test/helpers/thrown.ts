// The one "expect it to throw" helper: runs `fn`, fails the test unless it
// throws an instance of `type`, and returns the error for further checks.
import { expect } from 'vitest';

export function thrown<E extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => E, context = ''): E {
  let err: unknown;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    err = e;
  }
  expect(threw, `expected a ${type.name}${context ? ` for:\n${context}` : ''}`).toBe(true);
  expect(err, `wrong error type${context ? ` for:\n${context}` : ''}`).toBeInstanceOf(type);
  return err as E;
}
