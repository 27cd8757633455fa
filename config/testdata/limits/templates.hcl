# brackets in comments and strings never count: [[[[ {{{{ ((((
// [[[[
/* {{{{ */
job "tpl" {
  exec = <<-EOT
    sh -c 'echo "[[[[ ${env.X} $${not} %%{not}"'
    %{ if true }yes%{ else }no%{ endif }
    %{ for x in ["a", "b"] ~}
      ${x}]]]
    %{~ endfor }
    EOT
  dir = "${"${"nested ${upper("x")}"}"}"
  env = {
    Q = "\"[[[\" $ % ${1}"
  }
}
