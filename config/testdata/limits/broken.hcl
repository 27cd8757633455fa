a {
b }
a {
b }
a {
b }
x = "${ ( }" )
c {
d { e = ( }
}
f = [ }
]
g {
h { i }
}
