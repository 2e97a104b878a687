// Files bundled as text by esbuild (--loader:.py=text --loader:.md=text --loader:.txt=text).
declare module '*.py' {
  const text: string;
  export default text;
}
declare module '*.md' {
  const text: string;
  export default text;
}
