// This file has only comments and whitespace.
// A minifier turns it into an empty (or nearly empty) output, which is still valid.

/*
 * Block comment with a fake function inside:
 * function notReal() { return 1; }
 */

/** JSDoc block that documents nothing. @deprecated */

// eof
