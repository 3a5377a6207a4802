//! Config templates: files rendered with `${NAME}` macros expanded; `$$` is a dollar;
//! an unknown macro is an error naming the file and line. No code runs.
