variable "name" {
  description = "Alias name of the key (alias/<name>)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,200}$", var.name))
    error_message = "name may hold letters, digits, '/', '_' and '-'."
  }
}

variable "tags" {
  description = "Tags for the key."
  type        = map(string)
  default     = {}
}
