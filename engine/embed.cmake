# embed.cmake -- turns a text file into a C header holding it as a
# NUL-terminated char array. Usage: cmake -DIN=file -DOUT=header -DNAME=ident -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n  " bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by embed.cmake; do not edit. */\n"
     "static const char ${NAME}[] = {\n  ${bytes}0x00};\n")
