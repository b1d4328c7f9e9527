# Writes a C++ source that defines `const char NAME[]` as the text of a file
# (the status page's HTML), so the file stays editable as what it is.
#   embed_text.py INPUT OUTPUT NAME
import sys

source, output, name = sys.argv[1:4]
with open(source, encoding='utf-8') as f:
    text = f.read()
delimiter = 'embedded'
if ')' + delimiter + '"' in text:
    sys.exit(f'{source}: contains the raw string delimiter ){delimiter}"')
with open(output, 'w', encoding='utf-8') as f:
    f.write(f'extern const char {name}[];\nconst char {name}[] = R"{delimiter}({text}){delimiter}";\n')
