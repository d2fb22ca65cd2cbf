// Types of realm-qa in Node (js/node.js): the same API as the main entry; model, index,
// passages and bundle may also be paths or file: URLs.
export * from "./index.js";
