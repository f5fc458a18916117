#include "ui/gl.h"

#include <vector>

#include "engine/common/error.h"

namespace longshot::ui::gl {

void delete_texture(GLuint id) { glDeleteTextures(1, &id); }
void delete_framebuffer(GLuint id) { glDeleteFramebuffers(1, &id); }
void delete_program(GLuint id) { glDeleteProgram(id); }
void delete_vertex_array(GLuint id) { glDeleteVertexArrays(1, &id); }

namespace {
GLuint compile(GLenum kind, const std::string& name, const std::string& src) {
  const GLuint s = glCreateShader(kind);
  const char* text = src.c_str();
  glShaderSource(s, 1, &text, nullptr);
  glCompileShader(s);
  GLint ok = 0;
  glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
  if (!ok) {
    GLint len = 0;
    glGetShaderiv(s, GL_INFO_LOG_LENGTH, &len);
    std::vector<char> log(static_cast<size_t>(len) + 1, '\0');
    glGetShaderInfoLog(s, len, nullptr, log.data());
    glDeleteShader(s);
    throw Error("shader '" + name + "' does not compile: " + log.data());
  }
  return s;
}
}  // namespace

Program link_program(const std::string& vertex_name, const std::string& vertex_src, const std::string& fragment_name,
                     const std::string& fragment_src) {
  const GLuint vs = compile(GL_VERTEX_SHADER, vertex_name, vertex_src);
  GLuint fs = 0;
  try {
    fs = compile(GL_FRAGMENT_SHADER, fragment_name, fragment_src);
  } catch (...) {
    glDeleteShader(vs);
    throw;
  }
  Program p(glCreateProgram());
  glAttachShader(p.get(), vs);
  glAttachShader(p.get(), fs);
  glLinkProgram(p.get());
  glDeleteShader(vs);
  glDeleteShader(fs);
  GLint ok = 0;
  glGetProgramiv(p.get(), GL_LINK_STATUS, &ok);
  if (!ok) {
    GLint len = 0;
    glGetProgramiv(p.get(), GL_INFO_LOG_LENGTH, &len);
    std::vector<char> log(static_cast<size_t>(len) + 1, '\0');
    glGetProgramInfoLog(p.get(), len, nullptr, log.data());
    throw Error("shaders '" + vertex_name + "' + '" + fragment_name + "' do not link: " + log.data());
  }
  return p;
}

void upload_texture(Texture& tex, int width, int height, GLenum internal_format, GLenum format, GLenum type,
                    const void* data, GLint filter) {
  if (!tex) {
    GLuint id = 0;
    glGenTextures(1, &id);
    tex = Texture(id);
  }
  glBindTexture(GL_TEXTURE_2D, tex.get());
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, filter);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, filter);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glPixelStorei(GL_UNPACK_ROW_LENGTH, 0);
  glTexImage2D(GL_TEXTURE_2D, 0, static_cast<GLint>(internal_format), width, height, 0, format, type, data);
  glBindTexture(GL_TEXTURE_2D, 0);
}

}  // namespace longshot::ui::gl
