/**
 * BART: Solaris-compatible manifests of a tree, their rules, and their
 * comparison. Everything drift and reintegration need, without the CLI.
 */
export type {
  AttributeDifference,
  AttributeName,
  Difference,
  DifferenceKind,
  EntryType,
  HashAlgorithm,
  Manifest,
  ManifestEntry,
  ManifestHeader,
  StatIndex,
} from './types.js';
export { HASH_ALGORITHMS, displayPath, fromFsName, printable, toFsPath } from './types.js';
export { decodeName, encodeName } from './escape.js';
export { formatEntry, formatHeader, formatIndex, formatIndexChunks, formatManifest, formatManifestChunks, makeHeader, solarisDate, sortEntries } from './format.js';
export { applyIndex, parseEntryLine, parseManifest } from './parse.js';
export { lookupInManifest, lookupInText, type EntryLookup } from './lookup.js';
export { ALL, ATTR, DEFAULT_FLAGS, KEYWORDS, applyIgnoreList, defaultRules, parseRules, ruleFor, type Rule, type Rules } from './rules.js';
export { compareManifests, differencesToJson, entryDifferences, formatProgrammatic, formatVerbose, type CompareOptions } from './compare.js';
export { createManifest, type CreateOptions, type CreateResult } from './create.js';
export { createManifestText, type CreateTextOptions, type CreateTextResult } from './saved.js';
export { hashBytes, hashFile, loadHashers } from './hash.js';
