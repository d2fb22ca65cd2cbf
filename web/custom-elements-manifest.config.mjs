// The manifest analyzer's settings (`npm run manifest` and `npm run check`): package.json
// names the published custom-elements.json itself, so the analyzer must not rewrite it (the
// check writes its manifest under node_modules/ and would point package.json there).
export default { packagejson: false };
