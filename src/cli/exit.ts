/** Exit status of the command line. */
export const EXIT_OK = 0;
/** Some scenario did not meet its expectation. */
export const EXIT_NOT_MET = 1;
/** Bad input: a scenario, a token, an argument. */
export const EXIT_BAD_INPUT = 2;
export const EXIT_INTERNAL = 3;
